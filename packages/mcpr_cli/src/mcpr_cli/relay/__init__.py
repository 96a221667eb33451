"""The self-hostable tunnel relay behind `mcpr relay run`."""
