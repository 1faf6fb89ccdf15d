"""Who may do what: users, passwords, API tokens."""
