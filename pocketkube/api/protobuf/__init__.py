"""Reading Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

`decode(body)` turns a body sent by a client-go typed client into the same dict a JSON body
would have produced.
"""

from .decode import MEDIA_TYPE, decode, decode_message

__all__ = ["MEDIA_TYPE", "decode", "decode_message"]
