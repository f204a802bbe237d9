"""`python -m authapp.cli secrets generate`: the commands that need no app (and no secrets)."""

import click

from authapp.cli.secrets import secrets_group


@click.group()
def main() -> None:
    """authapp's commands that run without an app; the rest are `flask` commands."""


main.add_command(secrets_group)

if __name__ == "__main__":
    main()
