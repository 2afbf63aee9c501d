import CompressNIO
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// gzip for `.gor.gz` files, as GoReplay chooses it: by the `.gz` suffix.
enum Gzip {
    /// GoReplay writes and reads gzip when the name ends in `.gz`.
    static func isGzipName(_ path: String) -> Bool { path.hasSuffix(".gz") }

    /// The gzip magic number, so a compressed file without the suffix is
    /// still read rather than reported as one corrupt record.
    static func hasGzipMagic(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: [0x1F, 0x8B])
    }
}

/// Streams the decompressed bytes of a gzip file; concatenated members
/// (what `--output-file-append` and `cat a.gz b.gz` produce) are read as one.
final class GzipInflater {
    private let decompressor: ZlibDecompressor
    private var input: ByteBuffer
    private let path: String

    init(path: String) throws(FileIOError) {
        self.path = path
        do {
            decompressor = try ZlibDecompressor(algorithm: .gzip)
        } catch {
            throw FileIOError(path: path, operation: "gunzip", code: ENOMEM)
        }
        input = ByteBufferAllocator().buffer(capacity: GorFileReader.chunkSize)
    }

    /// The next decompressed bytes, reading compressed ones with
    /// `readMore` (false at end of file). Empty means the end.
    func readChunk(readMore: (inout ByteBuffer) throws(FileIOError) -> Bool) throws(FileIOError) -> [UInt8] {
        var out = ByteBufferAllocator().buffer(capacity: GorFileReader.chunkSize * 2)
        var inputEnded = false
        var idleRounds = 0
        while out.readableBytes == 0 {
            if input.readableBytes == 0 {
                if inputEnded { return [] }
                input.discardReadBytes()
                if try !readMore(&input) {
                    inputEnded = true
                    if input.readableBytes == 0 { return [] }
                }
            }
            let before = input.readableBytes
            do {
                try decompressor.inflate(from: &input, to: &out)
                // No error, yet input left: a member ended and another follows.
                if input.readableBytes > 0 { try decompressor.reset() }
            } catch let error as CompressNIOError where error == .bufferOverflow {
                break // `out` is full
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                // Needs more input (at the end of the file: a cut-off member,
                // whose partial record the reader reports).
            } catch {
                throw FileIOError(path: path, operation: "gunzip", code: EILSEQ, detail: "not gzip data, or corrupt")
            }
            idleRounds = input.readableBytes == before && out.readableBytes == 0 ? idleRounds + 1 : 0
            if idleRounds > 2 {
                throw FileIOError(
                    path: path, operation: "gunzip", code: EILSEQ, detail: "gzip stream makes no progress")
            }
        }
        return Array(out.readableBytesView)
    }
}

/// Compresses `.gor` records into a gzip member; `sync` makes everything
/// written so far readable (GoReplay flushes its gzip writer the same way).
/// `@unchecked Sendable`: its only owner, a file output's writer, is used
/// under that output's lock.
final class GzipDeflater: @unchecked Sendable {
    private let compressor: ZlibCompressor
    private var output = ByteBufferAllocator().buffer(capacity: 64 * 1024)

    init(path: String) throws(FileIOError) {
        do {
            compressor = try ZlibCompressor(algorithm: .gzip)
        } catch {
            throw FileIOError(path: path, operation: "gzip", code: ENOMEM)
        }
    }

    enum Flush { case none, sync, finish }

    /// Compresses `bytes` and returns what is ready to write.
    func compress(_ bytes: [UInt8], flush: Flush) -> [UInt8] {
        if bytes.isEmpty && flush == .none { return [] }
        var input = ByteBufferAllocator().buffer(capacity: max(1, bytes.count))
        input.writeBytes(bytes)
        output.clear()
        let mode: CompressNIOFlush = flush == .none ? .no : flush == .sync ? .sync : .finish
        var stuck = 0
        while stuck < 3 {
            output.reserveCapacity(minimumWritableBytes: max(compressor.maxSize(from: input), 16 * 1024))
            let before = (input.readableBytes, output.readableBytes)
            do {
                try compressor.deflate(from: &input, to: &output, flush: mode)
                // Done once all input is taken and the output was not filled
                // (a full output may hide pending bytes).
                if input.readableBytes == 0 && output.writableBytes > 0 { break }
            } catch {
                // Output full (or, for a repeated flush, nothing to do).
            }
            stuck = before == (input.readableBytes, output.readableBytes) ? stuck + 1 : 0
        }
        return Array(output.readableBytesView)
    }
}
