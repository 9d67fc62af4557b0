//! Erasing one lead: `DELETE /api/leads/{id}`.
