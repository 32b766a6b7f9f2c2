"""Pure planning for the installer: what to install (job), where it goes in memory
(addresses) and which disk blocks hold what (layout).  No I/O except reading file
sizes and small file headers.
"""
