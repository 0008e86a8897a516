"""Analytics: the rollups the report worker keeps and the reports read from them."""
