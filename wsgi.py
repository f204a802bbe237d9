"""The WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""

from flask.cli import load_dotenv

# .env and .flaskenv (found from the working directory up), as `flask` reads them: a variable
# already in the environment wins (docs/configuration.md).
load_dotenv()

from authapp import create_app  # noqa: E402 - after .env: the settings are read at import

app = create_app()
