/*
 * Each sample's read depths in the job's bins: one CNVKIT_COVERAGE task per sample, as
 * `cnvkit.py batch` runs coverage; or, when the job has more bins (target + antitarget) than
 * params.coverage_chunk_bins, one task per (sample, chunk of whole chromosomes) and a merge per
 * sample, whose files are those one task writes (bin/coverage_chunks.py says why). Only the
 * merged files are published, as coverage/<id>.targetcoverage.cnn and .antitargetcoverage.cnn.
 *
 * Tasks: S samples and C chunks make S tasks below the threshold, S * C + 1 + S above it (the
 * chunk tasks, the split, the merges); `chunks` emits C, or 0 below the threshold.
 */
include { CNVKIT_COVERAGE                          } from '../../../modules/cnvkit/coverage'
include { CNVKIT_COVERAGE as CNVKIT_COVERAGE_CHUNK } from '../../../modules/cnvkit/coverage'
include { CNVKIT_COVERAGE_SPLIT                    } from '../../../modules/local/coverage_split'
include { CNVKIT_COVERAGE_MERGE                    } from '../../../modules/local/coverage_merge'
include { busyProcesses; taskCpus                  } from '../cpus'

workflow COVERAGE {
    take:
    bams         // channel: [meta, BAM or CRAM, its index]
    fasta        // value channel: [FASTA, its .fai]
    targets      // value channel: the target BED; or [] with a reference built earlier
    antitargets  // value channel: the antitarget BED; or [] with a reference built earlier
    reused       // path: reference.cnn built earlier, whose bins are used; or []
    options      // value channel: checked option strings, {FIELD: {args, processes}}
    samples      // value channel: how many samples are covered

    main:
    wanted = options.map { o -> (o.coverage_conf.processes ?: 1) as int }  // coverage_conf's -p
    regions = reused ? channel.value([[], []]) : targets.combine(antitargets)
    // a reference's lines bound its bins; else the larger BED's
    busy = reused ? channel.value(busyProcesses(reused.countLines())) :
        regions.map { t, a -> busyProcesses(Math.max(t.countLines(), a.countLines())) }
    // a reference's lines are its bins and a header
    bins = reused ? channel.value(reused.countLines() - 1) :
        regions.map { t, a -> t.countLines() + a.countLines() }
    chunked = bins.map { n -> n > (params.coverage_chunk_bins as long) }

    CNVKIT_COVERAGE(
        bams.combine(chunked).filter { row -> !row[3] }.map { row -> row[0..2] }
            .combine(regions).combine(busy.combine(wanted).combine(samples).map { b, w, n -> taskCpus(w, n, b) })
            .map { meta, bam, bai, t, a, cpus -> [meta, bam, bai, t, a, cpus, null] },
        fasta, reused ?: [], options)

    CNVKIT_COVERAGE_SPLIT(
        regions.map { t, a -> [t, a, reused ?: []] }.combine(chunked)
            .filter { row -> row[3] }.map { row -> row[0..2] },
        params.coverage_chunk_bins)
    // [name, target BED, antitarget BED, the processes CNVkit's -p can keep busy on them] of
    // each chunk; and how many chunks there are (each sample's chunks may run at once)
    beds = CNVKIT_COVERAGE_SPLIT.out.chunks.flatMap { t, a ->
        [[t].flatten().sort { f -> f.name }, [a].flatten().sort { f -> f.name }].transpose()
            .collect { tb, ab ->
                [tb.name.tokenize('.')[0], tb, ab, busyProcesses(Math.max(tb.countLines(), ab.countLines()))]
            }
    }
    count = CNVKIT_COVERAGE_SPLIT.out.chunks.map { t, _a -> [t].flatten().size() }
    CNVKIT_COVERAGE_CHUNK(
        bams.combine(beds).combine(busy.combine(wanted).combine(samples).combine(count))
            .map { meta, bam, bai, name, t, a, most, b, w, n, c ->
                [meta, bam, bai, t, a, taskCpus(w, n * c, Math.min(b, most)), name]
            },
        fasta, [], options)
    CNVKIT_COVERAGE_MERGE(
        CNVKIT_COVERAGE_CHUNK.out.cnn.combine(count)
            .map { meta, t, a, n -> [groupKey(meta, n), t, a] }
            .groupTuple()
            .map { key, t, a -> [key.getGroupTarget(), t.sort { f -> f.name }, a.sort { f -> f.name }] })

    emit:
    cnn      = CNVKIT_COVERAGE.out.cnn.mix(CNVKIT_COVERAGE_MERGE.out.cnn)  // [meta, target .cnn, antitarget .cnn]
    chunks   = chunked.filter { split -> !split }.map { _split -> 0 }.mix(count).first()  // C or 0
    versions = CNVKIT_COVERAGE.out.versions.mix(CNVKIT_COVERAGE_CHUNK.out.versions)
}
