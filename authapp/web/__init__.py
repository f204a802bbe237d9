"""Page plumbing every feature's HTML shares: loading and rendering forms, a safe `next`, form
sessions and their CSRF check, the template context and filters."""
