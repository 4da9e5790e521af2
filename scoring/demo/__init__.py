"""The embedded demo: synthetic rides with NYC TLC columns, and the demo bundle trained on them."""
