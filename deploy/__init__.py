"""The library every task calls: build, publish, attach, verify Lambda layers and code."""
