"""Writing: the engine that schedules many jobs, AgentWrite (plan, then write in order), the judge's requests."""
