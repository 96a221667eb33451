"""Commands that read and maintain the local store (`mcpr proxy logs …`, `mcpr store …`)."""
