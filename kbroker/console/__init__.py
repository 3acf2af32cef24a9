"""The web console: a page (static/, vanilla JS, no CDN) and a JSON API over ClusterView.

It is a client of the cluster, like the tools: `cluster_view.py` reads everything through
confluent-kafka's AdminClient/Consumer/Producer, `web.py` serves it with aiohttp. The broker runs
it (`console.listener`) on a thread and event loop of its own, pointed at its own listener; `kbroker
console --bootstrap-server ...` runs it against any cluster. Neither aiohttp nor confluent-kafka is
imported unless the console runs (the `console` extra).
"""
