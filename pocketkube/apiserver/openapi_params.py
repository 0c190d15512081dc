"""Request parameters and media types that the OpenAPI v3 operations declare.

kube-apiserver documents each operation's query and path parameters; kubectl depends on one of
them (a `fieldValidation` parameter on a kind's PATCH operation tells it the server validates
fields itself, so it skips client-side validation). The sets below are the ones kube-apiserver
1.32 declares for each action.
"""

from __future__ import annotations

from typing import Any

_QUERY: dict[str, tuple[str, str]] = {
    "allowWatchBookmarks": ("boolean", "Request watch events of type BOOKMARK. Servers that do not "
                            "implement bookmarks may ignore this flag."),
    "continue": ("string", "The continue token from a previous paged list result with the same "
                 "query."),
    "dryRun": ("string", "When present, modifications are not persisted. Valid value: All."),
    "fieldManager": ("string", "The name of the actor making these changes; required for apply "
                     "patches."),
    "fieldSelector": ("string", "Restrict the list of returned objects by their fields. Defaults "
                      "to everything."),
    "fieldValidation": ("string", "How the server handles unknown or duplicate fields in the "
                        "request object: Ignore, Warn or Strict."),
    "force": ("boolean", "Force an apply request, taking ownership of conflicting fields. Must "
              "be unset for non-apply patches."),
    "gracePeriodSeconds": ("integer", "Seconds before the object is deleted; zero deletes "
                           "immediately."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean", "Delete an object that cannot be read from storage (corrupt or undecodable)."),
    "labelSelector": ("string", "Restrict the list of returned objects by their labels. Defaults "
                      "to everything."),
    "limit": ("integer", "Maximum number of items to return; a continue token is set when more "
              "remain."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy. Whether dependents are "
                         "orphaned."),
    "pretty": ("string", "If 'true', then the output is pretty printed."),
    "propagationPolicy": ("string", "Whether and how garbage collection is performed: Orphan, "
                          "Background or Foreground."),
    "resourceVersion": ("string", "Constraint on the resource versions a request may be served "
                        "from."),
    "resourceVersionMatch": ("string", "How resourceVersion is applied to list calls."),
    "sendInitialEvents": ("boolean", "With watch=true, start the watch stream with synthetic "
                          "events for the current state, followed by a bookmark."),
    "timeoutSeconds": ("integer", "Timeout for the list/watch call."),
    "watch": ("boolean", "Watch for changes to the described resources and return them as a "
              "stream of add, update, and remove notifications."),
    # log
    "container": ("string", "The container for which to stream logs or run the command. "
                  "Defaults to the only container if there is one."),
    "follow": ("boolean", "Follow the log stream of the pod."),
    "insecureSkipTLSVerifyBackend": ("boolean", "Skip verifying the serving certificate of the "
                                     "backend the log is read from."),
    "limitBytes": ("integer", "Number of bytes to read from the server before terminating the log "
                   "output."),
    "previous": ("boolean", "Return the logs of the previous terminated container."),
    "sinceSeconds": ("integer", "Relative time in seconds before now from which to show logs."),
    "stream": ("string", "The log stream to return: All, Stdout or Stderr."),
    "tailLines": ("integer", "Number of lines from the end of the logs to show."),
    "timestamps": ("boolean", "Prefix every line of log output with an RFC3339 timestamp."),
    # exec / attach / port-forward / proxy
    "command": ("string", "Command is the remote command to execute. argv array."),
    "stderr": ("boolean", "Redirect the standard error stream of the container."),
    "stdin": ("boolean", "Redirect the standard input stream of the container."),
    "stdout": ("boolean", "Redirect the standard output stream of the container."),
    "tty": ("boolean", "Allocate a terminal for the call."),
    "ports": ("integer", "List of ports to forward."),
    "path": ("string", "Path is the URL path to use for the current proxy request."),
}

LIST = ("labelSelector", "fieldSelector", "watch", "allowWatchBookmarks", "resourceVersion",
        "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "limit", "continue")
WRITE = ("dryRun", "fieldManager", "fieldValidation")
PATCH = ("dryRun", "fieldManager", "fieldValidation", "force")
DELETE = ("gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
          "orphanDependents", "propagationPolicy", "dryRun")
DELETE_COLLECTION = DELETE + tuple(p for p in LIST if p not in ("watch", "allowWatchBookmarks"))
LOG = ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous",
       "sinceSeconds", "stream", "tailLines", "timestamps")
CONNECT: dict[str, tuple[str, ...]] = {
    "exec": ("command", "container", "stderr", "stdin", "stdout", "tty"),
    "attach": ("container", "stderr", "stdin", "stdout", "tty"),
    "portforward": ("ports",),
    "proxy": ("path",),
}

RESPONSE_TYPES = ("application/json", "application/vnd.kubernetes.protobuf", "application/yaml")
WATCH_TYPES = ("application/json", "application/json;stream=watch",
               "application/vnd.kubernetes.protobuf",
               "application/vnd.kubernetes.protobuf;stream=watch", "application/yaml")
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")
LOG_TYPES = ("application/json", "application/vnd.kubernetes.protobuf", "application/yaml",
             "text/plain")


def query(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "description": _QUERY[n][1],
            "in": "query",
            "name": n,
            "schema": {"type": _QUERY[n][0], "uniqueItems": True},
        }
        for n in names
    ]


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "in": "path",
        "name": name,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


NAMESPACE = path_param("namespace", "object name and auth scope, such as for teams and projects")
