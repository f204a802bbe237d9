"""Account and organization settings: routes.py, pages.py, schemas.py; services/ holds the use
cases; pagination.py and verified.py are building blocks that never commit."""
