"""The Callback console: a web UI served by the engine at ``/ui/`` that works through the engine's
own HTTP API (``routes.py`` its files and sign-in, ``session.py`` the sign-in sessions,
``headers.py`` the Content-Security-Policy; ``static/`` the page itself)."""
