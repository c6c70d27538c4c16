"""The lab's Compose project: the engine it needs, its lifecycle, readiness as objects, the
one health judgement, and the Supabase profile."""
