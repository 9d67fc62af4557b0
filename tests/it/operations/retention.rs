//! Erasing old leads: `LEADS_RETENTION_DAYS`.
