"""Planning and delivering reminders."""
