"""Developer tools of the nsdk project (not shipped in the wheel)."""
