"""Label taxonomies shared by training, inference, alerts and the dashboard."""

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")

# The 20-class financial topic taxonomy (twitter-financial-news-topic, label ids 0..19 in this order).
TOPICS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)
