"""Presenters: what a page shows, as plain data (no requests, no responses).

``formatting`` writes values (states, durations, times, JSON previews); ``run_page`` is the
run page, its live status and a node's details; ``preview`` is a stored workflow as the admin
shows it (tree, problems, canvas, graph); ``dashboard`` is the admin index's. The admin views
and the template tags call them and only add what needs the request (permissions, URLs of the
site, messages).
"""
