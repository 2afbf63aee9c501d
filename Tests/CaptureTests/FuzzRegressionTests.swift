import Testing

@testable import Capture

/// Inputs found by the libFuzzer harnesses (Sources/Fuzzing, docs/fuzzing.md), kept as tests.
@Suite("Fuzz findings: TCP reassembly")
struct ReassemblerFuzzRegressionTests {
    struct RecordingSink: StreamSink {
        var events: [String] = []
        mutating func deliver(_ bytes: UnsafeRawBufferPointer, mark: StreamMark) {
            events.append("deliver \(mark.sequence) \(String(decoding: bytes, as: UTF8.self))")
        }
        mutating func gap(lostBytes: Int?, reason: GiveUpReason) { events.append("gap \(lostBytes ?? -1)") }
        mutating func end(reset: Bool) { events.append(reset ? "reset" : "end") }
    }

    private func receive(
        _ reassembler: inout TCPStreamReassembler, _ sequence: UInt32, _ flags: TCPFlags, _ text: String,
        into sink: inout RecordingSink
    ) {
        let mark = StreamMark(timestamp: 1, sequence: sequence, acknowledgement: 0)
        Array(text.utf8).withUnsafeBytes {
            reassembler.receive(sequence: sequence, flags: flags, payload: $0, mark: mark, into: &sink)
        }
    }

    /// FuzzTCPReassembler crash-5365d443ea8d: a segment buffered beyond the FIN stayed buffered
    /// after the stream ended, and resolving the "gap" (as the engine does when input ends)
    /// reported a gap and delivered its bytes after the end.
    @Test func nothingIsDeliveredAfterTheFin() {
        var reassembler = TCPStreamReassembler(maxBufferedBytes: 1 << 20)
        var sink = RecordingSink()
        receive(&reassembler, 999, .syn, "", into: &sink)
        receive(&reassembler, 1010, [], "late", into: &sink) // out of order, beyond the FIN below
        receive(&reassembler, 1000, .fin, "hello", into: &sink)
        #expect(sink.events == ["deliver 1000 hello", "end"])
        #expect(reassembler.ended && !reassembler.hasGap && reassembler.bufferedBytes == 0)

        reassembler.resolveGap(reason: .sequenceGap, into: &sink)
        reassembler.discardBuffered(reason: .reorderBufferFull, into: &sink)
        #expect(sink.events == ["deliver 1000 hello", "end"])
    }
}
