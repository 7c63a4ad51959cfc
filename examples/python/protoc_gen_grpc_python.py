"""A protoc plugin for buf that runs grpcio-tools' grpc_python generator.

That generator exists only inside the protoc bundled with grpcio-tools, and buf's
`protoc_builtin` knows protoc's own generators only (python, pyi, ...), not this
one. So this plugin reads buf's CodeGeneratorRequest on stdin, hands its files to
that protoc as a descriptor set, and answers with the *_pb2_grpc.py files it wrote.
"""

import os
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        # proto_file holds the files to generate and everything they import.
        descriptors = os.path.join(tmp, "descriptors.binpb")
        with open(descriptors, "wb") as f:
            f.write(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        options = f"{request.parameter}:" if request.parameter else ""
        status = protoc.main(
            ["protoc", f"--descriptor_set_in={descriptors}", f"--grpc_python_out={options}{out}"]
            + list(request.file_to_generate)
        )
        if status != 0:
            response.error = f"grpc_tools.protoc exited with status {status} (its messages are above)"
        else:
            for directory, _, files in os.walk(out):
                for name in sorted(files):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as f:
                        response.file.add(name=os.path.relpath(path, out), content=f.read())
    sys.stdout.buffer.write(response.SerializeToString())


if __name__ == "__main__":
    main()
