"""LM Studio's model descriptions from ModelInfo: the fields and types the SDK's schemas want."""

from __future__ import annotations

from service.api.lmstudio import protocol
from service.core.types import ModelInfo


def test_a_model_that_chats_and_embeds_is_an_llm():
    local = ModelInfo(id="smollm2-135m-instruct", provider="local", context_length=2048,
                      supports_tools=True, supports_embeddings=True, format="gguf",
                      size_bytes=1234, parameter_size="135M", family="llama")
    info = protocol.instance_info(local)
    assert info == {"type": "llm", "modelKey": "smollm2-135m-instruct",
                    "path": "smollm2-135m-instruct", "displayName": "smollm2-135m-instruct",
                    "format": "gguf", "sizeBytes": 1234, "maxContextLength": 2048,
                    "paramsString": "135M", "architecture": "llama", "vision": False,
                    "trainedForToolUse": True, "identifier": "smollm2-135m-instruct",
                    "instanceReference": "smollm2-135m-instruct", "contextLength": 2048}
    embed = ModelInfo(id="embed", provider="up", supports_embeddings=True)
    assert protocol.model_info(embed) == {
        "type": "embedding", "modelKey": "embed", "path": "embed", "displayName": "embed",
        "format": "gguf", "sizeBytes": 0, "maxContextLength": protocol.UNKNOWN_CONTEXT}


def test_unknown_formats_and_sizes_take_values_the_sdk_accepts():
    m = ModelInfo(id="x", provider="up", format="unknown", size_bytes=None)
    info = protocol.model_info(m)
    assert info["format"] == "gguf" and info["sizeBytes"] == 0
    assert protocol.model_info(ModelInfo(id="y", provider="up", format="safetensors"))[
        "format"] == "safetensors"


def test_packets_are_checked_field_by_field():
    assert protocol.packet_error({"type": "rpcCall", "callId": 1, "endpoint": "x"}) is None
    assert "callId" in protocol.packet_error({"type": "rpcCall", "callId": True, "endpoint": "x"})
    assert "endpoint" in protocol.packet_error({"type": "rpcCall", "callId": 1})
    assert "unknown packet type" in protocol.packet_error({"type": "rpcResult"})
    assert protocol.packet_error(None) and protocol.packet_error([])
    assert protocol.auth_packet_error(
        {"authVersion": 1, "clientIdentifier": "a", "clientPasskey": "b"}) is None
    assert "authVersion" in protocol.auth_packet_error({"authVersion": "1"})
