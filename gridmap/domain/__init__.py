"""The domain: grid levels, integrity rules, the demo city. No SQL, no HTTP here."""
