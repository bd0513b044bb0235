//! `POST /hooks/{forge}`: verified webhooks become builds.
