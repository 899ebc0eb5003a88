// A pooled reference (flat without coverages), and its record (bin/reference_record.py): the
// FASTA, BED, annotation, pooled samples and the option strings it was built with, so that a
// job reusing it can check them. The job's reference is reference/reference.cnn; with
// reference_mode leave-one-out, sample ID's is reference/leave-one-out/ID.reference.cnn, pooled
// from all the other samples. Options: task.ext.args -> reference (reference_conf; with
// --no-edge for amplicon and wgs), then -x SEX when every pooled sample was given that sex;
// task.ext.options: the job's option strings, of which the record keeps those that shape a
// reference. The record also keeps the job's method, autobin, the bin sizes its regions were
// made with (bin_sizes.json) and its access: access_conf, the exclusion BEDs or the access BED.
process CNVKIT_REFERENCE {
    tag "${id ? "leave-one-out ${id}" : coverages ? 'pooled' : 'flat'}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // null or the sample (leave-one-out) it is for; coverages to pool, or [] for a flat
    // reference; the sex they were all given, or null
    tuple val(id), path(coverages), val(sex)
    path targets
    path antitargets
    tuple path(fasta), path(fai)
    path bed, stageAs: 'regions/*'  // the user's BED ([]: wgs without) and annotation: recorded
    path annotation, stageAs: 'genes/*'
    path bin_sizes, stageAs: 'sizes/*'  // the regions' bin_sizes.json; [] for none
    path access_bed, stageAs: 'access/*'  // the access BED given instead of access; [] for none
    path excludes, stageAs: 'exclude*/*'  // access's exclusion BEDs; [] for none
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    tuple val(id), path("reference/**.cnn"), emit: cnn
    path "reference/**.json", emit: record
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def controls = coverages ? "${coverages}" : ''
    def flat = coverages ? '' : "-t ${targets} -a ${antitargets}"  // no controls: a flat reference
    def names = (coverages instanceof Collection ? coverages : [coverages])
        .findAll { f -> f.name.endsWith('.targetcoverage.cnn') }
        .collect { f -> "--control ${f.name - '.targetcoverage.cnn'}" }.join(' ')
    def options = task.ext.options ?: ''  // --option=FIELD='ARGS' of each option string
    def given = sex ? "-x ${sex}" : ''
    def out = id ? "reference/leave-one-out/${id}.reference" : 'reference/reference'
    def method = params.method ?: 'hybrid'
    def autobin = params.autobin == true || (params.autobin == null && method == 'wgs')
    def assay = ["--method ${method}", "--autobin ${autobin}",
                 bin_sizes ? "--bin-sizes ${bin_sizes}" : '',
                 access_bed ? "--access-bed ${access_bed}" : '',
                 (excludes instanceof Collection ? excludes : [excludes]).collect { f -> "--access-exclude ${f}" }.join(' ')]
        .findAll().join(' ')
    """
    mkdir -p \$(dirname ${out})
    cnvkit.py reference ${controls} ${args} ${flat} ${given} -f ${fasta} -o ${out}.cnn
    reference_record.py --fasta ${fasta} --fai ${fai} ${bed ? "--bed ${bed}" : ''} ${annotation ? "--annotation ${annotation}" : ''} \\
        ${names} ${options} ${assay} --pipeline '${workflow.manifest.version}' -o ${out}.json
    """

    stub:
    def out = id ? "reference/leave-one-out/${id}.reference" : 'reference/reference'
    """
    mkdir -p \$(dirname ${out})
    touch ${out}.cnn
    echo '{}' > ${out}.json
    """
}
