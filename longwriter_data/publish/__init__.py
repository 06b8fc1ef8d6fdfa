"""Results: the run's statistics and report, inspect, the dataset card, export formats and the Hub push."""
