import Replay

/// Anything that yields `.gor` records one at a time: a file reader, or a
/// test's array.
public protocol GorRecordSource: AnyObject {
    var sourceName: String { get }
    /// The next well-formed record, or nil at the end.
    func nextRecord() throws -> ReplayMessage?
    /// Records skipped as corrupt so far.
    var skippedRecords: Int { get }
    /// Why, for the first few.
    var skippedDescriptions: [String] { get }
}

extension GorFileReader: GorRecordSource {
    public var sourceName: String { path }
    public func nextRecord() throws -> ReplayMessage? { try next() }
    public var skippedRecords: Int { skippedCount }
    public var skippedDescriptions: [String] { skippedReasons.map { "\(path): \($0)" } }
}

/// Several sources merged into one stream by timestamp, holding one record
/// per source: files from several capture hosts become one report, and a
/// request and its responses may even sit in different files.
public struct MergedRecords {
    private let sources: [any GorRecordSource]
    private var heads: [ReplayMessage?]

    public init(_ sources: [any GorRecordSource]) throws {
        self.sources = sources
        heads = try sources.map { try $0.nextRecord() }
    }

    /// Opens each path with `GorFileReader` (a missing file fails here,
    /// before anything is read).
    public init(paths: [String]) throws {
        var readers: [any GorRecordSource] = []
        for path in paths { readers.append(try GorFileReader(path: path)) }
        try self.init(readers)
    }

    public var skippedRecords: Int { sources.reduce(0) { $0 + $1.skippedRecords } }
    /// The first reasons records were skipped, with their file (at most 10).
    public var skippedDescriptions: [String] { Array(sources.flatMap(\.skippedDescriptions).prefix(10)) }

    public mutating func next() throws -> ReplayMessage? {
        var best: Int?
        for index in heads.indices {
            guard let head = heads[index] else { continue }
            if let current = best, let currentHead = heads[current], currentHead.timestamp <= head.timestamp {
                continue
            }
            best = index
        }
        guard let best, let record = heads[best] else { return nil }
        heads[best] = try sources[best].nextRecord()
        return record
    }
}
