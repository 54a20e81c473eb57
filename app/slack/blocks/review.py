"""The periodic access review as it is posted: a file (the Markdown report, named by its
period) with a one-line summary as the comment."""

from __future__ import annotations

from dataclasses import dataclass

from app.review import Review, render_markdown
from app.slack.text import escape


@dataclass(frozen=True)
class ReviewUpload:
    """What files_upload_v2 posts: the file and the comment that comes with it (mrkdwn)."""

    filename: str
    title: str
    content: str
    initial_comment: str


def review_upload(review: Review) -> ReviewUpload:
    """The review's report as a file named by its period, with the summary as the comment."""
    return ReviewUpload(
        filename=f"access-review-{review.since:%Y-%m-%d}-to-{review.until:%Y-%m-%d}.md",
        title=f"Access review {review.since:%Y-%m-%d} to {review.until:%Y-%m-%d}",
        content=render_markdown(review),
        initial_comment=":clipboard: " + escape(review.summary()),
    )
