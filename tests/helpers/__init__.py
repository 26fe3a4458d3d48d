"""What the test suites share: service resolution, fixtures of the read side, private
PostgreSQL and Redis servers for fault tests, live processes, and small assertions."""
