"""The move off hosted Supabase: preflight, sync, cutover, verify, finish."""
