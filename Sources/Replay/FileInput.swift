import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Settings of `--input-file`.
public struct FileInputOptions: Sendable {
    /// `|200%` → 2.0: gaps between records are divided by it.
    public var speedFactor: Double = 1
    /// `--input-file-loop`: start again at the end.
    public var loop = false
    /// `--input-file-max-wait`: longest pause between two records.
    public var maxWait: Duration?
    /// `--input-file-read-depth`: records read ahead per file and replayed
    /// in timestamp order (GoReplay 1.3: a heap of this many).
    public var readDepth = 100

    public init() {}
}

/// `--input-file`: replays `.gor` records with their original pacing
/// (scaled by the speed factor). Several files (a glob) are merged by
/// timestamp. Corrupt records are skipped and counted in `statistics`.
public struct GorFileInput: MessageInput {
    public let name: String
    public let paths: [String]
    public let options: FileInputOptions
    let statistics: ReplayStatistics?

    /// - Parameter pattern: a path or a glob (`*`, `?`, `[…]`).
    public init(pattern: String, options: FileInputOptions = FileInputOptions(), statistics: ReplayStatistics? = nil)
        throws(FileIOError)
    {
        self.name = "file:\(pattern)"
        self.options = options
        self.statistics = statistics
        var matches: [String] = []
        if pattern.contains(where: { "*?[".contains($0) }) {
            var result = glob_t()
            defer { globfree(&result) }
            if glob(pattern, 0, nil, &result) == 0 {
                for index in 0..<Int(result.gl_pathc) {
                    if let path = result.gl_pathv[index] { matches.append(String(cString: path)) }
                }
            }
            guard !matches.isEmpty else { throw FileIOError(path: pattern, operation: "glob", code: ENOENT) }
        } else {
            matches = [pattern]
        }
        // Open each once now so a missing (or, for .gz, undecodable) file is
        // reported before replay starts.
        for path in matches {
            try GorFileReader(path: path).probe()
        }
        self.paths = matches.sorted()
    }

    public func messages() -> AsyncThrowingStream<ReplayMessage, any Error> {
        let state = makeReader()
        return AsyncThrowingStream { try await state.next() }
    }

    /// What `messages()` reads from, for a caller that can call `next()` itself.
    func makeReader() -> FileReplayState {
        FileReplayState(paths: paths, options: options, statistics: statistics)
    }
}

/// The reading and pacing state behind one `messages()` stream. The stream
/// calls `next()` one at a time, which is what keeps it safe.
final class FileReplayState: @unchecked Sendable {
    private let paths: [String]
    private let options: FileInputOptions
    private let statistics: ReplayStatistics?
    private var readers: [GorFileReader] = []
    /// Records read ahead from each reader, earliest first.
    private var windows: [ReorderWindow] = []
    /// Next record of each reader (nil: exhausted).
    private var heads: [ReplayMessage?] = []
    private var started = false
    private var lastTimestamp: Int64?
    /// Monotonic time at which the last record was due.
    private var due: Int64 = 0

    init(paths: [String], options: FileInputOptions, statistics: ReplayStatistics?) {
        self.paths = paths
        self.options = options
        self.statistics = statistics
    }

    private func open() throws {
        readers = []
        heads = []
        windows = []
        for path in paths {
            readers.append(try GorFileReader(path: path))
            windows.append(ReorderWindow(depth: options.readDepth))
        }
        for index in readers.indices { heads.append(try pull(index)) }
    }

    /// The earliest record of reader `index` among the next `readDepth`.
    private func pull(_ index: Int) throws -> ReplayMessage? {
        while !windows[index].isFull, let message = try read(index) {
            windows[index].insert(message)
        }
        return windows[index].popEarliest()
    }

    private func read(_ index: Int) throws -> ReplayMessage? {
        let before = readers[index].skippedCount
        let message = try readers[index].next()
        let after = readers[index].skippedCount
        if after > before, let statistics {
            let reasons = readers[index].skippedReasons
            let path = readers[index].path
            statistics.updatePipeline { pipeline in
                pipeline.corruptRecords += after - before
                for reason in reasons.suffix(after - before) where pipeline.corruptReasons.count < 10 {
                    pipeline.corruptReasons.append("\(path): \(reason)")
                }
            }
        }
        return message
    }

    func next() async throws -> ReplayMessage? {
        if Task.isCancelled { return nil }
        if !started {
            started = true
            try open()
            due = monotonicNanoseconds()
        }
        var pick = heads.indices.min { a, b in
            switch (heads[a], heads[b]) {
            case (let x?, let y?): x.timestamp < y.timestamp
            case (.some, nil): true
            default: false
            }
        }
        if let index = pick, heads[index] == nil { pick = nil }
        if pick == nil {
            guard options.loop, readers.contains(where: { $0.recordsRead > 0 }) else { return nil }
            try open()
            lastTimestamp = nil
            pick = heads.indices.first { heads[$0] != nil }
            guard pick != nil else { return nil }
            return try await next()
        }
        guard let index = pick, let message = heads[index] else { return nil }
        heads[index] = try pull(index)
        try await pace(message.timestamp)
        return message
    }

    /// Waits so records keep their recorded spacing, scaled by the speed
    /// factor. A record older than the last one replayed (out of order
    /// beyond the read depth) goes at once and adds no delay (GoReplay).
    private func pace(_ timestamp: Int64) async throws {
        guard let last = lastTimestamp else {
            lastTimestamp = timestamp
            due = monotonicNanoseconds()
            return
        }
        lastTimestamp = max(last, timestamp)
        // Doubles: timestamps come from files and may be anything.
        var gap = max(0, Double(timestamp) - Double(last)) / max(options.speedFactor, 0.000_001)
        if let maxWait = options.maxWait { gap = min(gap, Double(maxWait.nanoseconds)) }
        // A gap over a day is a broken timestamp, not a pause to keep.
        gap = min(gap, 86_400e9)
        due += Int64(gap)
        let now = monotonicNanoseconds()
        if due > now + 1_000_000 {
            try await Task.sleep(nanoseconds: UInt64(due - now))
        } else if due < now - 1_000_000_000 {
            // Far behind (a slow consumer): do not burst to catch up.
            due = now - 1_000_000_000
        }
    }
}

/// The next `depth` records of one file, handed out earliest first, so
/// records written out of order (live capture writes them as they
/// complete) replay in timestamp order. Stable for equal timestamps.
public struct ReorderWindow: Sendable {
    public let depth: Int
    /// Records from `head` on are waiting; those before it were handed out
    /// and are dropped in one move once `depth` of them pile up, so a pop
    /// does not shift the whole window (it did, once per record).
    private var records: [ReplayMessage] = []
    private var head = 0

    public init(depth: Int) {
        self.depth = max(1, depth)
        records.reserveCapacity(self.depth * 2)
    }

    public var isFull: Bool { records.count - head >= depth }

    public mutating func insert(_ message: ReplayMessage) {
        if head >= depth {
            records.removeFirst(head)
            head = 0
        }
        // In-order records (the usual case) go at the end without a search.
        if let last = records.last, head < records.count, last.timestamp <= message.timestamp {
            records.append(message)
            return
        }
        // After the last record with a timestamp ≤ this one (binary search).
        var low = head
        var high = records.count
        while low < high {
            let middle = (low + high) / 2
            if records[middle].timestamp <= message.timestamp { low = middle + 1 } else { high = middle }
        }
        records.insert(message, at: low)
    }

    public mutating func popEarliest() -> ReplayMessage? {
        guard head < records.count else { return nil }
        let message = records[head]
        // Let the payload go now rather than at the next compaction.
        records[head] = ReplayMessage.placeholder
        head += 1
        if head == records.count {
            records.removeAll(keepingCapacity: true)
            head = 0
        }
        return message
    }
}

extension ReplayMessage {
    /// Fills a handed-out slot of a `ReorderWindow` (holds no storage).
    fileprivate static let placeholder = ReplayMessage(type: .request, id: "", timestamp: 0, latency: nil, payload: [])
}
