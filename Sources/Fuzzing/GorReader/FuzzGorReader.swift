import Foundation
import FuzzSupport
import Replay

/// `.gor` files (plain, or gzip when the input starts with gzip's magic), read through
/// ``GorFileReader`` as replay does, with a record-size limit chosen by the first input byte so
/// oversized-record skipping is reached. Checks: every record read re-encodes to a record that
/// decodes to the same message; reading the re-encoded records back gives the same records and
/// skips none; records read plus skipped never exceed the separators in the file plus one.
@main
enum FuzzGorReader {
    static let original = ScratchFile("input.gor")
    static let rewritten = ScratchFile("again.gor")

    static func main() {
        atexit {
            FuzzGorReader.original.remove()
            FuzzGorReader.rewritten.remove()
        }
        runFuzzer { data, size in
            FuzzGorReader.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        guard let choice = input.first else { return }
        let file = Data(input.dropFirst())
        let maxRecordSize = choice < 128 ? Int(choice) * 16 + 1 : 64 * 1024 * 1024
        let messages = read(file, at: original, maxRecordSize: maxRecordSize)

        for message in messages {
            let encoded = GorFormat.encode(message)
            invariant(
                encoded.suffix(GorFormat.separator.count).elementsEqual(GorFormat.separator),
                "record without its separator")
            let record = encoded.dropLast(GorFormat.separator.count)
            do {
                let decoded = try GorFormat.decodeRecord(record)
                invariant(decoded == message, "record changed by encode then decode: \(message.id)")
            } catch {
                invariant(false, "an encoded record does not decode: \(error)")
            }
        }
        // The format cannot frame a payload that holds a separator, or ends with the start of one
        // (GoReplay's neither): the rewrite check needs each record's first separator at its end.
        guard
            messages.allSatisfy({
                firstSeparator(in: GorFormat.encode($0)) == $0.payload.count + GorFormat.metaLine(of: $0).utf8.count + 1
            })
        else { return }
        let again = read(
            Data(messages.flatMap { GorFormat.encode($0) }), at: rewritten, maxRecordSize: 64 * 1024 * 1024)
        invariant(again == messages, "rewritten file reads as \(again.count) records, not \(messages.count)")
    }

    static func read(_ file: Data, at scratch: ScratchFile, maxRecordSize: Int) -> [ReplayMessage] {
        scratch.store(file)
        guard let reader = try? GorFileReader(path: scratch.path, maxRecordSize: maxRecordSize) else { return [] }
        var messages: [ReplayMessage] = []
        while let message = try? reader.next() {
            messages.append(message)
            if messages.count > 100_000 { invariant(false, "more records than the file can hold") }
        }
        let separators = count([UInt8](file)[...], GorFormat.separator)
        invariant(
            reader.recordsRead == messages.count, "recordsRead \(reader.recordsRead) for \(messages.count) records")
        if file.prefix(2) != Data([0x1f, 0x8b]) {
            invariant(
                reader.recordsRead + reader.skippedCount <= separators + 1,
                "\(reader.recordsRead) read + \(reader.skippedCount) skipped from \(separators) separators")
        }
        return messages
    }

    static func count(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Int {
        var found = 0
        var index = haystack.startIndex
        while index + needle.count <= haystack.endIndex {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) {
                found += 1
                index += needle.count
            } else {
                index += 1
            }
        }
        return found
    }

    static func firstSeparator(in bytes: [UInt8]) -> Int? {
        let needle = GorFormat.separator
        guard bytes.count >= needle.count else { return nil }
        return (0...(bytes.count - needle.count)).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}
