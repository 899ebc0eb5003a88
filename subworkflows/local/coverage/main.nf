/*
 * Each sample's read depths in the job's bins: one CNVKIT_COVERAGE task per sample, as
 * `cnvkit.py batch` runs coverage; on a single machine (subworkflows/local/cpus,
 * params.group_stages), one task per role (the controls, the tumours), whose samples run side
 * by side in one CNVkit interpreter; or, when the job has more bins (target + antitarget) than
 * params.coverage_chunk_bins, one task per (sample, chunk of whole chromosomes) and a merge per
 * sample, whose files are those one task writes (bin/coverage_chunks.py says why). Only the
 * merged files are published, as coverage/<id>.targetcoverage.cnn and .antitargetcoverage.cnn.
 *
 * Tasks: S samples and C chunks make S tasks below the threshold (grouped: one per role),
 * S * C + 1 + S above it (the chunk tasks, the split, the merges); `chunks` emits C, or 0
 * below the threshold.
 */
include { CNVKIT_COVERAGE                          } from '../../../modules/cnvkit/coverage'
include { CNVKIT_COVERAGE as CNVKIT_COVERAGE_CHUNK } from '../../../modules/cnvkit/coverage'
include { CNVKIT_COVERAGE_SPLIT                    } from '../../../modules/local/coverage_split'
include { CNVKIT_COVERAGE_MERGE                    } from '../../../modules/local/coverage_merge'
include { busyProcesses; taskCpus; groupCpus; grouped } from '../cpus'

// The file of `files` (one, or a list) named `name`.
def named(files, name) {
    return [files].flatten().find { f -> f.name == name }
}

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

    threads = busy.combine(wanted).combine(samples).map { b, w, n -> taskCpus(w, n, b) }  // each line's -p
    // [metas, BAMs, indexes] of each task below the threshold: a sample, or the samples of a role
    units = bams.toList().map { rows -> [rows] }.combine(chunked)
        .filter { _rows, split -> !split }
        .flatMap { rows, _split ->
            (grouped() ? rows.groupBy { row -> row[0].role }.values() : rows.collect { row -> [row] })
                .collect { group -> group.transpose() }
        }
    CNVKIT_COVERAGE(
        units.combine(regions).combine(threads)
            .map { metas, bam, bai, t, a, p -> [metas, bam, bai, t, a, p, groupCpus(p, metas.size()), null] },
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
                def p = taskCpus(w, n * c, Math.min(b, most))
                [[meta], [bam], [bai], t, a, p, p, name]
            },
        fasta, [], options)
    CNVKIT_COVERAGE_MERGE(
        CNVKIT_COVERAGE_CHUNK.out.cnn.combine(count)
            .map { metas, t, a, n -> [groupKey(metas[0], n), t, a] }
            .groupTuple()
            .map { key, t, a -> [key.getGroupTarget(), t.sort { f -> f.name }, a.sort { f -> f.name }] })

    emit:
    // [meta, target .cnn, antitarget .cnn] of each sample
    cnn      = CNVKIT_COVERAGE.out.cnn
        .flatMap { metas, t, a ->
            metas.collect { meta -> [meta, named(t, "${meta.id}.targetcoverage.cnn"), named(a, "${meta.id}.antitargetcoverage.cnn")] }
        }
        .mix(CNVKIT_COVERAGE_MERGE.out.cnn)
    chunks   = chunked.filter { split -> !split }.map { _split -> 0 }.mix(count).first()  // C or 0
    versions = CNVKIT_COVERAGE.out.versions.mix(CNVKIT_COVERAGE_CHUNK.out.versions)
}
