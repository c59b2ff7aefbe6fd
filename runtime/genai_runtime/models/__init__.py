"""Model helpers: tiny offline models for tests and demos, and memory estimates."""
