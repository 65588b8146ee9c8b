"""The local playground: try Slotbot in a browser without a Slack workspace.

Slotbot's own handlers answer over its signed HTTP endpoint; a loopback Slack Web API stands in
for Slack, and a small page stands in for the Slack client.
"""
