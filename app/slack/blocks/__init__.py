"""What people see in Slack, built by pure functions from rows and policy, one module per
surface: answers (to the slash command), modals, card (the approval card), thread (its
thread's lines), dm (messages to the requester), home (the App Home tab). mrkdwn holds the
pieces they share. Nothing here calls Slack or the database; the listeners and the notifier
send what these functions return."""
