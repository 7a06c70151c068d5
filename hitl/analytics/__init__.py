"""Analytics (SPEC §9): figures per deployment, flow, method, reviewer and period, computed in the
database, for the analytics page, `GET /api/v1/analytics/` and the CSV downloads.

`filters` parses the one set of filters the page and the API share and finds the requests the
principal may analyse; `figures` computes every number (definitions in its docstring); `tables`
turns a report into the tables the page shows and the CSV files it offers.
"""
