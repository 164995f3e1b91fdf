"""iCalendar rendering and the HTTP feed server (issue 4)."""
