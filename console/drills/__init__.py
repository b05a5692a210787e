"""Game-day drills: scenarios, the watch loop on the real systems, scores and reports."""
