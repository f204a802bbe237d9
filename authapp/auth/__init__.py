"""Authentication: the JSON API (routes.py), the pages (pages.py), the guards and principals any
route uses, the browser's cookies and rate-limit keys; building blocks beside services/ never
commit, services/ holds the use cases."""
