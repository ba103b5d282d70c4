"""artent inside other frameworks' training loops (each integration imports its framework)."""
