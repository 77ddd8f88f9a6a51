"""``sparkjobs ui``: the run history as a local web page, a thin shell over the service.

Modules: ``reads`` (everything read from the service and the run store: the seams), ``table``
(the runs table's query, filters, sort and pages), ``compare``, ``previews``, ``charts`` (SVG
drawn on the server), ``pages`` (each page's data and JSON twin), ``server`` (routes, headers).
Templates and static files ship inside the package; nothing comes from the network.
"""
