"""What an operator watches: Prometheus metrics (``metrics``) and the lifecycle log (``lifecycle``).

Both observe the engine from outside its parts: they subscribe to the callback bus, the session
manager's and the dispatcher's observer lists, and read the parts' own state when scraped, so no
part of the engine knows they exist. ``engine.runtime`` builds them with the parts they watch.
"""
