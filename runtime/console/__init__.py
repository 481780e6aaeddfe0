"""The web console: the runtime's own HTTP pages for invocations, services, state, tenants and the
cluster, and the JSON API (/api/...) behind them.

Why it looks the way it does:

- It runs inside the node, on its event loop (aiohttp, imported only when `console` is on), and
  reads everything through the admin service's methods and the `Partition` interface: it shows
  what `endure invocations describe` shows, for every partition, and changes nothing by a path
  of its own (an action is the admin API's record appended to the partition's log).
- Pages are rendered on the server (`pages`) and enhanced by one small vanilla script (live
  updates, journal paging, confirmations): no build step and nothing minified to vendor.
- Access (`access`): with auth on (or an admin token configured) the admin token, or a tenant's
  API key for that tenant's data only; as a bearer header or through a sign-in form's cookie.
"""
