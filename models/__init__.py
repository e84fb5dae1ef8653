"""Which models gazeflow uses, and how they are fetched and verified."""
