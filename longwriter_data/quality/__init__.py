"""Quality: word counts and required lengths, usable answers, filters with named reasons, near-duplicates, judge."""
