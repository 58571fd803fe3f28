'use strict';
// usage: node run.js kafkajs|confluent-kafka-javascript BOOTSTRAP PREFIX
// Prints one JSON line per feature; exits 0 once every feature ran (see ../README.md).

const [client, bootstrap, prefix] = process.argv.slice(2);
const programs = {
  kafkajs: './kafkajs',
  'confluent-kafka-javascript': './confluent',
};
if (!programs[client] || !bootstrap || !prefix) {
  console.error('usage: node run.js kafkajs|confluent-kafka-javascript BOOTSTRAP PREFIX');
  process.exit(2);
}
require(programs[client]).main(bootstrap, prefix).then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
