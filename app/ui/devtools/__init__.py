"""Developer tools: screenshots, sample data, the self-test and the display check."""
