//! DynamoDB store. Implemented in its own change.
