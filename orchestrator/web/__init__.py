"""The web page served at ``/`` (``index.html``: plain HTML and JavaScript, no build step)."""
